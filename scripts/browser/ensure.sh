#!/usr/bin/env bash
# Make sure the browser tests (tests/browser) have a browser: Debian's Chromium, and the Noto CJK fonts
# so that Chinese pages render (and screenshot) as glyphs rather than boxes. Playwright drives this
# Chromium; it never downloads a browser of its own.
#
# Idempotent and quick (about a second) when both are installed: it only checks that Chromium starts
# headless and renders a page. Installing needs root. Exits non-zero, saying why, when the browser
# cannot be made to work.
#
# Settings (environment): SUANWANG_CHROMIUM (the browser binary; default: Debian's, see below).
set -euo pipefail

PACKAGES=(chromium fonts-noto-cjk)
# Debian's /usr/bin/chromium is a shell launcher that adds flags from /etc/chromium.d; the tests run the
# binary behind it with their own flags. Keep this in step with tests/browser/harness.py.
CHROMIUM="${SUANWANG_CHROMIUM:-/usr/lib/chromium/chromium}"

say() { echo "browser/ensure: $*"; }
die() {
  echo "browser/ensure: ERROR: $*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------- packages
install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && [[ -x /usr/bin/chromium ]] && return 0
  ((${#missing[@]} == 0)) && missing=(chromium) # the package is there but its launcher is not: reinstall
  [[ $(id -u) -eq 0 ]] || die "${missing[*]} not installed; run as root to install (apt-get install ${missing[*]})"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    say "apt-get install failed; updating the package lists and trying again"
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  } || die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------------------------------------------------ checks
# Start the browser headless, offline, and have it render a page: proves more than --version does
# (shared libraries, sandbox flags, /dev/shm). DBus complaints on stderr are harmless in a container.
check_chromium() {
  [[ -x $CHROMIUM ]] || die "no Chromium binary at $CHROMIUM (set SUANWANG_CHROMIUM to another one)"
  local version dom log
  version="$("$CHROMIUM" --version 2>/dev/null)" || die "$CHROMIUM --version failed"
  version="${version%"${version##*[![:space:]]}"}" # Chromium ends it with a space
  log="$(mktemp)"
  dom="$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --no-default-browser-check --disable-background-networking --disable-component-update \
    --disable-sync --dump-dom 'data:text/html,<p id=probe>ok</p>' 2>"$log")" \
    || {
      tail -n 15 "$log" >&2
      rm -f "$log"
      die "headless $CHROMIUM did not render a page (its log above)"
    }
  rm -f "$log"
  grep -q '<p id="probe">ok</p>' <<<"$dom" || die "headless $CHROMIUM rendered something unexpected: $dom"
  say "$version renders headless"
}

check_cjk_font() {
  command -v fc-list >/dev/null || die "fc-list (fontconfig) is missing: Chromium needs it"
  fc-list :lang=zh family | grep -q . || die "no Chinese font found by fontconfig (fonts-noto-cjk)"
}

# ------------------------------------------------------------------------------------------- main
# One run at a time: two sessions must not run apt-get together.
mkdir -p /run/lock 2>/dev/null || true
if [[ -w /run/lock ]]; then
  exec 9>/run/lock/suanwang-browser-ensure.lock
  flock 9
fi
install_packages
check_cjk_font
check_chromium
say "ready: Chromium at $CHROMIUM with CJK fonts; the browser tests can run"
