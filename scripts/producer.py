"""Example producer: knows only a URL. Sends a few JSON messages, then end-of-stream.

python scripts/producer.py mq://jobs
"""

import sys

import osipc


def main(url: str) -> None:
    with osipc.sender(url, codec="json") as tx:
        for n in range(1, 6):
            job = {"job": n, "task": ["resize", "encode", "upload"][n % 3]}
            tx.send(job, timeout=30)
            print(f"  producer  -> {job}", flush=True)
        tx.end(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
