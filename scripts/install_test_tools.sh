#!/usr/bin/env bash
# Install the real peers the tests drive, from Debian's packages: headless Chromium and
# ChromeDriver for the dashboard's browser test (/usr/bin/chromium, /usr/bin/chromedriver)
# and Alertmanager for the alerts test (/usr/bin/prometheus-alertmanager), and a PostgreSQL
# server for the SQL-source test (/usr/lib/postgresql/15/bin: initdb, postgres, pg_isready;
# the test starts its own server, so the package's default cluster is not used). Idempotent:
# does nothing when all are there. Browser builds downloaded by Playwright/Selenium Manager are
# not reachable from our machines; Debian's packages are.
set -euo pipefail

BINARIES=(/usr/bin/chromium /usr/bin/chromedriver /usr/bin/prometheus-alertmanager
          /usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/pg_isready)
missing=0
for binary in "${BINARIES[@]}"; do
    [ -x "$binary" ] || missing=1
done
[ "$missing" -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_test_tools.sh: need root (or sudo) to apt-get install the test tools" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core prometheus-alertmanager postgresql >/dev/null

for binary in "${BINARIES[@]}"; do
    if [ ! -x "$binary" ]; then
        echo "install_test_tools.sh: $binary still missing after apt-get install" >&2
        exit 1
    fi
done
echo "install_test_tools.sh: chromium, chromedriver, alertmanager and postgresql ready"
