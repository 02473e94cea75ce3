#!/usr/bin/env bash
# Installs Debian's `chromium` for the UI's browser test (tests/e2e), unless it is there, with
# the fonts its screenshots need. Idempotent: does nothing when chromium and the emoji font
# are installed. Needs root (or sudo).
set -euo pipefail
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [ -x /usr/bin/chromium ] && [ -f "$EMOJI_FONT" ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update
# Fonts too: a bare container has none, so pages would render without text, and the app's
# rating buttons (👍 👎) as empty boxes.
run_as_root apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-noto-color-emoji
/usr/bin/chromium --version
