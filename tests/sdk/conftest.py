# The scripts here run inside the SDK's Python 3.12 venv (see tests/conftest.py,
# run_sdk_script); pytest must not import them with the project's interpreter.
collect_ignore_glob = ["sdk_*.py"]
