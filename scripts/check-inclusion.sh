#!/bin/sh
# check-inclusion.sh PROOF RECORD NOTARY-KEY
#
# Check, with stock tools only (sha256sum, xxd, sed, gpg), that the record
# in the file RECORD is in a pit's log: PROOF is what `pit verify N --proof`
# printed, NOTARY-KEY the notary's public key (gpg --export), whose
# fingerprint you got from the pit's operator out of band.  Exit 0: proven.
# docs/verifying.md explains every step.
set -eu
proof=$1 record=$2 key=$3
hex2bin() { printf %s "$1" | xxd -r -p; }
sha() { sha256sum | cut -c1-64; }

# 1. the record hash, and the leaf hash: SHA-256(00 || record hash)
h=$(sha < "$record")
grep -q "^record-hash: $h " "$proof" || { echo "record hash $h is not the proof's"; exit 1; }
run=$( { printf '\000'; hex2bin "$h"; } | sha)

# 2. up the audit path: a left hash goes before the running hash, a right one after
for step in $(sed -n 's/^\(left\|right\) \([0-9a-f]\{64\}\)$/\1:\2/p' "$proof"); do
    side=${step%%:*} sib=${step#*:}
    if [ "$side" = left ]; then
        run=$( { printf '\001'; hex2bin "$sib"; hex2bin "$run"; } | sha)
    else
        run=$( { printf '\001'; hex2bin "$run"; hex2bin "$sib"; } | sha)
    fi
done

# 3. the root must be the one the notary signed, in the signed tree head
root=$(sed -n 's/^Root: \([0-9a-f]\{64\}\)$/\1/p' "$proof")
[ "$run" = "$root" ] || { echo "the path gives $run, the signed head says $root"; exit 1; }

# 4. the signed tree head verifies with the notary's key (a scratch GnuPG home)
home=$(mktemp -d)
trap 'gpgconf --homedir "$home" --kill gpg-agent 2>/dev/null; rm -rf "$home"' EXIT
gpg --homedir "$home" --batch --quiet --import "$key" 2>/dev/null
sed -n '/^-----BEGIN PGP SIGNED MESSAGE-----$/,/^-----END PGP SIGNATURE-----$/p' "$proof" > "$home/head.asc"
gpg --homedir "$home" --batch --status-fd 1 --verify "$home/head.asc" 2>/dev/null \
    | grep -q '^\[GNUPG:\] VALIDSIG ' || { echo "the signed tree head does not verify"; exit 1; }
echo "record $(sed -n 's/^record: //p' "$proof") is leaf $(sed -n 's/^leaf-index: //p' "$proof") of the $(sed -n 's/^Tree-Size: //p' "$proof")-record log whose root the notary signed: proven"
