#!/usr/bin/env bash
# Make sure the system tools streamlearn calls are present: install them with apt when running
# as root, otherwise stop with the exact command to run.
set -euo pipefail
declare -A PKG=([ffmpeg]=ffmpeg [ffprobe]=ffmpeg [espeak-ng]=espeak-ng)
missing=()
for tool in ffmpeg ffprobe espeak-ng; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing+=(fonts-dejavu-core)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # HTML review/report pages are tested in it
# real speech for tests and benchmarks (issue 16): telephone prompts read by real people, with text
[ -d /usr/share/asterisk/sounds/en_US_f_Allison ] || missing+=(asterisk-core-sounds-en-wav)
[ -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz ] || missing+=(asterisk-core-sounds-en)
[ -d /usr/share/asterisk/sounds/it_IT_m_Carlo ] || missing+=(asterisk-core-sounds-it-wav)
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
  echo "error: missing system tools ($pkgs); install them with: sudo apt-get install -y $pkgs" >&2
  exit 1
fi
