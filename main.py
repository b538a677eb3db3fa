"""``python main.py spec|check|discover|read ...``: the connector from a source checkout."""

from source_bitbucket.run import run

if __name__ == "__main__":
    run()
