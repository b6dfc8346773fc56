"""Example consumer: knows only a URL. Prints every message until end-of-stream.

python scripts/consumer.py mq://jobs
"""

import sys

import osipc


def main(url: str) -> None:
    count = 0
    with osipc.receiver(url, codec="json") as rx:
        for job in rx:  # the loop ends at end-of-stream
            count += 1
            print(f"  consumer  <- {job}", flush=True)
    print(f"  consumer: {count} messages, then end of stream", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
