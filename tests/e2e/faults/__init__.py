# "Nothing lost, nothing leaked": fault, crash, concurrency and secrecy tests of the transfer (see conftest.py).
