"""DataModules from real files: splits honoured, exclusions counted, batches reproducible."""

import lightning as L
import pytest
import torch

from cinefm.config import load_config
from cinefm.data.datamodules import PretrainDataModule, StudyDataModule
from cinefm.splits import LeakageError
from cinefm.train.experiments import expected_name, parse_experiment
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe

from .conftest import SIZE, SPECIAL, T

AUGMIX = {"severity": 3, "width": 2, "depth": -1, "alpha": 1.0}


def _pretrain(cohort, seed=1, num_workers=0, **kw):
    dm = PretrainDataModule(cohort.splits_csv, cohort.studies_csv, cohort.reports, SPECIAL, frames=T,
                            size=SIZE, sentences=2, text_max_tokens=16, batch_size=8,
                            num_workers=num_workers, seed=seed, augmix=AUGMIX, **kw)
    dm.setup("fit")
    return dm


def _recipe(cfg, task: str) -> FinetuneRecipe:
    """The recipe of a random-init transfer experiment on ``task`` under ``cfg``."""
    name = expected_name(task, "random", "transfer", 1.0)
    keys = {"task": task, "init": "random", "mode": "transfer", "fraction": 1.0, "seed": 0}
    return resolve_recipe(parse_experiment(keys, name, f"{name}.yaml", cfg["labels"]["diseases"]), cfg)


def _augmented(cfg, task: str) -> bool:
    return _recipe(cfg, task).data.augmix is not None


def _epoch(loader):
    return [(b["study_id"], b["view"], b["slice"], b["input_ids"], b["video"]) for b in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and torch.equal(x[2], y[2]) and torch.equal(x[3], y[3]) and torch.equal(x[4], y[4])
        for x, y in zip(a, b, strict=True))


def test_pretraining_uses_only_pretraining_patients_and_counts_exclusions(cohort):
    dm = _pretrain(cohort)
    train, val = dm.datasets["train"], dm.datasets["val"]
    sides = cohort.splits.set_index("patient_id")
    assert set(train.series["patient_id"]) == {"P00", "P01", "P02", "P03"}  # P04 has no report
    assert set(val.series["patient_id"]) == {"P05", "P06"}
    assert (sides.loc[list(train.series["patient_id"]), "split"] == "train").all()
    assert dm.exclusions["train/series_without_report"] == 7 and dm.exclusions["train/short_series"] == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (8, 3, T, SIZE, SIZE)
    assert batch["input_ids"].shape[0] == 8 and batch["attention_mask"].shape == batch["input_ids"].shape
    assert len(dm.train_dataloader()) == len(train) // 8  # contrastive batches are full


def test_same_seed_same_batches_with_zero_or_two_workers(cohort):
    runs = {}
    for workers in (0, 2):
        dm = _pretrain(cohort, seed=1, num_workers=workers)
        dm.datasets["train"][(0, 0)]  # opens an HDF5 file here, before the workers fork
        loader = dm.train_dataloader()
        runs[workers] = (_epoch(loader), _epoch(loader))
    again = _pretrain(cohort, seed=1).train_dataloader()
    assert _same(runs[0][0], _epoch(again))
    assert _same(runs[0][0], runs[2][0]) and _same(runs[0][1], runs[2][1])
    assert not _same(runs[0][0], runs[0][1])  # a new epoch reshuffles and redraws
    other = _epoch(_pretrain(cohort, seed=2).train_dataloader())
    assert not _same(runs[0][0], other)


def test_validation_batches_are_identical_every_epoch(cohort):
    loader = _pretrain(cohort, num_workers=0).val_dataloader()
    assert _same(_epoch(loader), _epoch(loader))


def test_lightning_sets_the_epoch_and_replays_the_same_run(cohort):
    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def training_step(self, batch, _):
            self.seen.append((self.current_epoch, tuple(batch["study_id"]), batch["video"].sum().item()))
            return (self.w * batch["video"].mean()) ** 2

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def run():
        model = Recorder()
        L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False).fit(model, _pretrain(cohort))
        return model.seen

    first, second = run(), run()
    assert first == second
    by_epoch = [[s for e, *s in first if e == k] for k in (0, 1)]
    assert by_epoch[0] and by_epoch[0] != by_epoch[1]


def test_study_module_trains_on_a_seeded_fraction_and_tests_the_test_split(cohort):
    dm = StudyDataModule(cohort.splits_csv, cohort.studies_csv, cohort.labels_csv, ["hcm", "lvef"],
                         frames=T, size=SIZE, batch_size=3, seed=4, train_fraction=0.5, fraction_seed=17)
    dm.setup("fit")
    assert dm.fraction.seed == 17 and dm.fraction.n_available == 6 and dm.fraction.n_patients == 3
    train_patients = {dm.datasets["train"].studies[i][:3] for i in range(len(dm.datasets["train"]))}
    assert {"P" + s[1:3] for s in train_patients} == set(dm.fraction.studies["patient_id"])
    assert dm.exclusions["test/studies_without_h5"] == 1  # P11's first study was never extracted
    assert set(dm.datasets["val"].studies) == {"S100", "S140"}
    assert dm.datasets["test"].studies == ["S160", "S170"]
    batch = next(iter(dm.test_dataloader()))
    assert batch["study_id"] == ["S160", "S170"] and batch["mask"].dtype == torch.bool
    assert batch["mask"].sum(1).tolist() == [7, 5]  # P17 has no 3CH/2CH
    assert batch["target"].shape == (2, 2)


def test_from_config_reads_the_data_section_and_a_leaking_split_stops_setup(cohort, tmp_path):
    cfg = load_config(overrides={"data": {"motion_gain": 1.5, "motion_crop": 0.7}})
    dm = PretrainDataModule.from_config(cfg, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                                        reports=cohort.reports, tokenizer=SPECIAL)
    assert dm.spec.frames == cfg["models"]["video"]["frames"] and dm.sentences == cfg["pretrain"]["sentences_per_step"]
    leaky = cohort.splits.copy()
    leaky.loc[leaky["patient_id"] == "P03", "split"] = ["train", "val"]
    path = tmp_path / "splits.csv"
    leaky.to_csv(path, index=False)
    sdm = StudyDataModule.from_recipe(_recipe(cfg, "lvef"), splits_csv=path, studies_csv=cohort.studies_csv,
                                      labels_csv=cohort.labels_csv)
    assert sdm.sax_fraction == cfg["finetune"]["lvef"]["sax_fraction"]
    cfg["finetune"]["disease"]["sax_fraction"] = 0.25
    disease = StudyDataModule.from_recipe(_recipe(cfg, "hcm"), splits_csv=path, studies_csv=cohort.studies_csv,
                                          labels_csv=cohort.labels_csv)
    assert disease.sax_fraction == 0.25
    cfg["finetune"]["augment"] = False
    cfg["finetune"]["disease"]["augment"] = True   # per task: diseases augmented, LVEF not
    assert _augmented(cfg, "diseases") and not _augmented(cfg, "lvef")
    cfg["finetune"]["augment"] = True
    cfg["finetune"]["lvef"].pop("augment", None)
    assert _augmented(cfg, "lvef")         # no per-task key: the section-wide switch
    assert dm.spec.motion_gain == sdm.spec.motion_gain == 1.5 and dm.spec.motion_crop == sdm.spec.motion_crop == 0.7
    with pytest.raises(LeakageError, match="patient P03"):
        sdm.setup("fit")


def test_external_cohorts_form_the_test_set_when_asked(cohort, tmp_path):
    splits = cohort.splits.copy()
    ext = splits["patient_id"].isin(["P16", "P17"])
    splits.loc[ext, ["cohort", "stage"]] = ["penn", "external"]
    path = tmp_path / "splits.csv"
    splits.to_csv(path, index=False)
    common = dict(frames=T, size=SIZE, batch_size=2, seed=4)
    external = StudyDataModule(path, cohort.studies_csv, cohort.labels_csv, ["lvef"], test_stage="external",
                               **common)
    external.setup("test")
    assert external.datasets["test"].studies == ["S160", "S170"]
    internal = StudyDataModule(path, cohort.studies_csv, cohort.labels_csv, ["lvef"], **common)
    internal.setup("test")
    assert len(internal.datasets["test"]) == 0 and internal.exclusions["test/studies_without_h5"] == 1


def test_finetune_augment_applies_augmix_to_training_clips_only(cohort):
    cfg = load_config()
    paths = dict(splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv, labels_csv=cohort.labels_csv)
    items = {}
    for augment in (False, True):
        cfg["finetune"]["augment"] = augment
        dm = StudyDataModule.from_recipe(_recipe(cfg, "lvef"), **paths)
        dm.setup("fit")
        items[augment] = {split: dm.datasets[split][(0, 5)] if split == "train" else dm.datasets[split][0]
                          for split in ("train", "val")}
    plain, augmented = items[False], items[True]
    assert plain["train"]["views"] == augmented["train"]["views"]  # same draw of series and phase
    assert not torch.equal(plain["train"]["video"], augmented["train"]["video"])
    assert torch.equal(plain["val"]["video"], augmented["val"]["video"])  # evaluation is never augmented
