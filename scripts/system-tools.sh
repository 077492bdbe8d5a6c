#!/usr/bin/env bash
# Installs the system tools the stream and browser tests use (ffmpeg, Chromium, GStreamer's RTSP
# server) when they are missing and we are root. Without root they are skipped with a printed
# reason, except under CI=true, where a missing tool fails the run.
set -u
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' \
  >/dev/null 2>&1 || missing+=(gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system tools for the tests: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install failed for: ${missing[*]}"; [ "${CI:-}" = true ] && exit 1; }
  exit 0
fi
if [ "${CI:-}" = true ]; then
  echo "CI=true and system tools are missing (not root, cannot install): ${missing[*]}"
  exit 1
fi
echo "note: ${missing[*]} missing and not root: the stream and browser tests will be skipped"
