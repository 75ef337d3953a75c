#!/usr/bin/env bash
# Debian's DejaVu fonts for the PDF letters (backend/channels/letters.py embeds DejaVu Sans:
# the PDF core fonts cannot print every letter of a debtor's name), installed only when
# missing.
set -euo pipefail
if [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
  && [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends fonts-dejavu-core
