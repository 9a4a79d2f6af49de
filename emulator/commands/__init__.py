"""The ``upload-emulator`` commands other than ``serve``: one module each, with ``DESCRIPTION``, ``parser()`` and
``run(argv)``, dispatched by ``emulator.main``."""
