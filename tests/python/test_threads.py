"""Long calls release the GIL: two Python threads predicting at once finish sooner than one
after the other, with the same answers; Ctrl-C stops a long call at its next batch."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import patchvec
from conftest import fixture_images


def test_two_threads_overlap(model):
    patchvec.set_threads(1)  # each call on one core: two calls can use both
    try:
        images = fixture_images() * 4
        expected = [p.score for p in model.predict(images)]
        start = time.perf_counter()
        model.predict(images)
        model.predict(images)
        one_after_the_other = time.perf_counter() - start

        results = [None, None]

        def work(i):
            results[i] = [p.score for p in model.predict(images)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        at_once = time.perf_counter() - start
    finally:
        patchvec.set_threads(0)
    assert results == [expected, expected]
    # Held, the GIL would make them take as long as one after the other (or longer).
    assert at_once < 0.85 * one_after_the_other, (at_once, one_after_the_other)


def test_ctrl_c_interrupts_a_long_call(model_path):
    # The child measures what the whole call would take, then is sent SIGINT half a second into it.
    child = textwrap.dedent(f"""
        import os, signal, threading, time
        import patchvec
        model = patchvec.Model.load({str(model_path)!r})
        images = {fixture_images()!r} * 100
        start = time.perf_counter()
        model.predict(images[:60])
        whole = (time.perf_counter() - start) * len(images) / 60
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        start = time.perf_counter()
        try:
            model.predict(images)
            print("finished")
        except KeyboardInterrupt:
            print(f"interrupted {{time.perf_counter() - start:.3f}} {{whole:.3f}}")
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=300, env=os.environ)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[0] == "interrupted", done.stdout + done.stderr
    # Stopped at a batch, not when the call ended on its own.
    assert float(words[1]) < 0.5 * float(words[2]), done.stdout
