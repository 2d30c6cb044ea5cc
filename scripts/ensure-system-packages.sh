#!/usr/bin/env bash
# Install the Debian packages the project needs beyond Python's: the fonts notify's
# printable letter (致来访者的一封信) embeds. Does nothing when they are there already.
set -euo pipefail

needed=(fonts-droid-fallback fonts-dejavu-core)
missing=()
for package in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "Install these Debian packages, then run again: ${missing[*]}" >&2
  exit 1
fi
as_root=""; [ "$(id -u)" -ne 0 ] && as_root="sudo"
echo "installing ${missing[*]}..."
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
