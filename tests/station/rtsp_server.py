#!/usr/bin/python3
"""An RTSP server on 127.0.0.1 for the station's stream test: GStreamer's (gir1.2-gst-rtsp-server-1.0)
serving PNG files as MJPEG over RTP at 10 frames a second, looping.

    rtsp_server.py PORT 'DIR/frame-%03d.png'    ->  rtsp://127.0.0.1:PORT/line
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, pattern = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# Paced by the clock (identity sync=true: files are no live source), and I420 before the encoder:
# RTP/JPEG (RFC 2435) carries 4:2:0 or 4:2:2 only.
factory.set_launch(
    f"( multifilesrc location={pattern} loop=true caps=image/png,framerate=10/1 ! pngdec ! "
    "identity sync=true ! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=95 ! "
    "rtpjpegpay name=pay0 pt=26 )")
factory.set_shared(True)
server.get_mount_points().add_factory("/line", factory)
if server.attach(None) == 0:
    sys.exit(f"rtsp_server.py: cannot listen on 127.0.0.1:{port}")
print(f"serving rtsp://127.0.0.1:{port}/line", flush=True)
GLib.MainLoop().run()
