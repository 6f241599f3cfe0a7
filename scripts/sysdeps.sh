#!/bin/sh
# Install the system programs pit runs (gpg, mairix, rsync, xxd, and Postfix and
# iproute2 for the mail tests) where missing.  Needs root (or sudo) only when something
# is missing.
#
# Postfix is installed the way a test machine wants it: noninteractive,
# "Local only", and *not started*: the tests start their own instances with
# their own configuration directories and ports.  A machine that already
# has another MTA (exim4, sendmail, ...) keeps it: installing Postfix would
# remove it, so Postfix is skipped there (the Postfix tests then skip, with
# the reason).  apt waits for a dpkg lock held by someone else.
set -e
missing=""
command -v gpg    >/dev/null 2>&1 || missing="$missing gnupg"
command -v mairix >/dev/null 2>&1 || missing="$missing mairix"
command -v rsync  >/dev/null 2>&1 || missing="$missing rsync"
command -v xxd    >/dev/null 2>&1 || missing="$missing xxd"       # docs/verifying.md: proofs by hand
[ -x /usr/sbin/ip ] || command -v ip >/dev/null 2>&1 || missing="$missing iproute2"   # tests/test_hosts.py: ip netns
postfix=""
if ! [ -x /usr/sbin/postfix ]; then
    if dpkg-query -W -f='${Status} ${Provides}\n' 2>/dev/null \
            | grep '^install ok installed' | grep -q 'mail-transport-agent'; then
        echo "sysdeps: another MTA is installed; not installing postfix" >&2
    else
        postfix="postfix"
    fi
fi
[ -z "$missing$postfix" ] && exit 0
echo "installing:$missing $postfix" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
APT="apt-get -o DPkg::Lock::Timeout=300"
$SUDO $APT update -qq
[ -z "$missing" ] || $SUDO $APT install -y -qq $missing
[ -n "$postfix" ] || exit 0

# Postfix: preseed "Local only", and keep invoke-rc.d from starting the
# system instance (a policy-rc.d that says "not now", removed again after
# unless the machine had one of its own).
printf '%s\n' \
    "postfix postfix/main_mailer_type select Local only" \
    "postfix postfix/mailname string $(hostname -f 2>/dev/null || hostname)" \
    | $SUDO debconf-set-selections
policy=/usr/sbin/policy-rc.d
own_policy=""
if ! [ -e "$policy" ]; then
    own_policy=yes
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT INT TERM
fi
$SUDO $APT install -y -qq --no-install-recommends postfix
# Whatever started it anyway (an init without policy-rc.d): stop the
# system instance; the tests run their own.
if $SUDO /usr/sbin/postfix status >/dev/null 2>&1; then
    $SUDO /usr/sbin/postfix stop >/dev/null 2>&1 || true
fi
[ -z "$own_policy" ] || { $SUDO rm -f "$policy"; trap - EXIT INT TERM; }
