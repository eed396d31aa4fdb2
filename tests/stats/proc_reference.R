# Reference values from R pROC for tests/stats/test_against_proc.py.
# Usage: Rscript proc_reference.R DIR
# DIR/manifest.csv: name, direction, independent (1 = score b rates another sample).
# DIR/<name>_<v>.f64: vector v (y, a, b; yb for an independent sample b) as little-endian
# float64, so that R reads exactly the doubles Python wrote (no decimal round trip).
# Writes DIR/proc.tsv: dataset, key, index, value (%.17g), one row per number.
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
manifest <- read.csv(file.path(dir, "manifest.csv"), stringsAsFactors = FALSE, na.strings = "")
out <- file(file.path(dir, "proc.tsv"), "w")
emit <- function(name, key, values) {
  for (i in seq_along(values)) {
    v <- values[[i]]
    txt <- if (is.character(v)) v else sprintf("%.17g", v)
    writeLines(paste(name, key, i, txt, sep = "\t"), out)
  }
}
pick <- function(primary, secondary, allowed) {
  idx <- which(allowed)
  top <- idx[primary[idx] == max(primary[idx])]
  top[which.max(secondary[top])]
}
curve <- function(name, prefix, r) {
  emit(name, paste0(prefix, "auc"), as.numeric(r$auc))
  emit(name, paste0(prefix, "direction"), r$direction)
  ci <- suppressWarnings(ci.auc(r, method = "delong", conf.level = 0.95))
  emit(name, paste0(prefix, "ci"), as.numeric(ci))
  ci90 <- suppressWarnings(ci.auc(r, method = "delong", conf.level = 0.9))
  emit(name, paste0(prefix, "ci90"), as.numeric(ci90))
  emit(name, paste0(prefix, "var"), suppressWarnings(var(r, method = "delong")))
  co <- coords(r, "all", ret = c("threshold", "sensitivity", "specificity"))
  emit(name, paste0(prefix, "thr"), co$threshold)
  emit(name, paste0(prefix, "se"), co$sensitivity)
  emit(name, paste0(prefix, "sp"), co$specificity)
  best <- coords(r, "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"))
  emit(name, paste0(prefix, "best_thr"), best$threshold)
  i_se <- pick(co$specificity, co$sensitivity, co$sensitivity >= 0.9)
  i_sp <- pick(co$sensitivity, co$specificity, co$specificity >= 0.9)
  emit(name, paste0(prefix, "sens90_thr"), co$threshold[i_se])
  emit(name, paste0(prefix, "spec90_thr"), co$threshold[i_sp])
}
vec <- function(name, v) {
  f <- file.path(dir, paste0(name, "_", v, ".f64"))
  readBin(f, "double", n = file.size(f) / 8, size = 8, endian = "little")
}
for (k in seq_len(nrow(manifest))) {
  name <- manifest$name[k]
  dirn <- manifest$direction[k]
  y <- vec(name, "y")
  ra <- roc(y, vec(name, "a"), levels = c(0, 1), direction = dirn, quiet = TRUE)
  curve(name, "a_", ra)
  if (manifest$independent[k] == 0) {
    rb <- roc(y, vec(name, "b"), levels = c(0, 1), direction = dirn, quiet = TRUE)
    curve(name, "b_", rb)
    tp <- suppressWarnings(roc.test(ra, rb, method = "delong", paired = TRUE))
    emit(name, "paired_stat", unname(tp$statistic))
    emit(name, "paired_p", tp$p.value)
    emit(name, "paired_ci", as.numeric(tp$conf.int))
    tp90 <- suppressWarnings(roc.test(ra, rb, method = "delong", paired = TRUE, conf.level = 0.9))
    emit(name, "paired_ci90", as.numeric(tp90$conf.int))
  } else {
    rb <- roc(vec(name, "yb"), vec(name, "b"), levels = c(0, 1), direction = dirn, quiet = TRUE)
    curve(name, "b_", rb)
  }
  tu <- suppressWarnings(roc.test(ra, rb, method = "delong", paired = FALSE))
  emit(name, "unpaired_stat", unname(tu$statistic))
  emit(name, "unpaired_df", unname(tu$parameter))
  emit(name, "unpaired_p", tu$p.value)
}
close(out)
