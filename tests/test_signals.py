import os
import signal
import threading

from beffroi.signals import stop_on_signals


def test_sigterm_in_the_block_asks_to_stop_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    stopped = threading.Event()
    with stop_on_signals(stopped.set):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopped.wait(5)
        assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_the_block_runs_without_handlers():
    ran = []

    def body():
        with stop_on_signals(lambda: None):
            ran.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert ran == [before]
