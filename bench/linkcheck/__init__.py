"""Link-checker benchmark: clinicpress vs lychee vs LinkChecker on a loopback link farm.

Run ``.venv/bin/python -m bench.linkcheck`` from the project root (see README.md here).
"""
