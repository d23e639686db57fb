#!/usr/bin/python3
"""An HTTP MJPEG stream on 127.0.0.1 for the station's stream test (multipart/x-mixed-replace, as
IP cameras send it): PNG files as JPEG frames, 10 a second, looping.

    mjpeg_server.py PORT 'DIR/*.png'    ->  http://127.0.0.1:PORT/stream.mjpg
"""
import glob
import io
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

port, pattern = int(sys.argv[1]), sys.argv[2]
frames = []
for path in sorted(glob.glob(pattern)):
    out = io.BytesIO()
    Image.open(path).convert("RGB").save(out, "JPEG", quality=95)
    frames.append(out.getvalue())


class Stream(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for n in range(100000):  # bounded: at most about 3 hours
                jpeg = frames[n % len(frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                 str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


print(f"serving http://127.0.0.1:{port}/stream.mjpg", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Stream).serve_forever()
