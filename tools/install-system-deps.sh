#!/usr/bin/env bash
# Debian packages the tests and some stages need beyond the Python venv:
#   slurmctld slurmd slurm-client munge  single-node SLURM for tests/workflow/test_slurm.py
#   r-base-core r-cran-proc              R pROC, the reference the stats tests compare against
#   chromium                             headless browser for the report tests
# Idempotent: installs only what is missing and says what it did.
# Usage (as root): tools/install-system-deps.sh [--dry-run]
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge r-base-core r-cran-proc chromium)

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--dry-run]" >&2
    exit 2
fi

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if is_installed "$pkg"; then
        echo "install-system-deps: $pkg already installed"
    else
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system-deps: nothing to do"
    exit 0
fi

echo "install-system-deps: missing: ${missing[*]}"
if [[ $dry_run -eq 1 ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-system-deps: must run as root to install: ${missing[*]}" \
         "(run: sudo $0)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

for pkg in "${missing[@]}"; do
    if is_installed "$pkg"; then
        echo "install-system-deps: installed $pkg"
    else
        echo "install-system-deps: FAILED to install $pkg" >&2
        exit 1
    fi
done
