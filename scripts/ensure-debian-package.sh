#!/bin/sh
# Run by `make test` for the tools some tests drive: `ensure-debian-package.sh COMMAND PACKAGE
# WHAT` installs Debian's PACKAGE when COMMAND is missing and apt is usable; otherwise it says
# so, and the tests that need it (WHAT) skip with that reason. Never a failure: a machine
# without apt still runs every other test.
command_name=$1 package=$2 what=$3
if command -v "$command_name" >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$package: installing with apt-get ($what)"
    if apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$package" >/dev/null 2>&1; then
        echo "$package: installed"
    else
        echo "$package: apt-get could not install it; $what will be skipped"
    fi
else
    echo "$package: not installed and apt-get is not usable here; $what will be skipped"
fi
