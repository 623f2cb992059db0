"""Check an ncpc pool with the public AMM Python client (Hivetensor/AutoML-Miner's
automl_client.client.BittensorPoolClient), call by call: register, request an evolve task,
submit an evolution, request an evaluate task, submit evaluations.

    ncpc pool serve --listen 127.0.0.1:8000 --db /tmp/pool.sqlite &
    AMM_REPO=/path/to/AutoML-Miner python scripts/amm_client_check.py http://127.0.0.1:8000 "$MNEMONIC"

Needs a Python with torch and substrate-interface (and cryptography, which AMM's wallet
module imports). AMM's run-miner.py imports the bittensor package; its client only needs a
wallet object whose hotkey is a substrate-interface Keypair, which this script builds, so
bittensor is not needed. Exits non-zero when a call fails.
"""
import json
import os
import sys
import time
import types

sys.path.insert(0, os.environ["AMM_REPO"])
from substrateinterface import Keypair  # noqa: E402
from automl_client.client import BittensorPoolClient  # noqa: E402

MAE = [[100, 1, 0], [100, 2, 1], [2, 1, 2, 3], [9, 3, 4], [201, 4, -1, 9], [453, 9]]


def main():
    url, mnemonic = sys.argv[1], sys.argv[2]
    wallet = types.SimpleNamespace(hotkey=Keypair.create_from_mnemonic(mnemonic))
    c = BittensorPoolClient(wallet=wallet, base_url=url)
    print("register:", json.dumps(c.register()))
    task = c.request_task("evolve")
    # A pool takes one `auth:<seconds>` message for register, reset_active and request (the
    # calls AMM's client makes within a second), never for a submission: AMM's own cycle
    # spends seconds computing between its request and its submission.
    time.sleep(1.1)
    parents = [{"id": f["id"]} for f in task["functions"]]
    meta = {"fitness": 0.58, "generations": 10, "population_size": 200,
            "parent_id": parents[0]["id"], "genetic_code_length": len(MAE),
            "total_evaluations": 2000, "generation_stats": []}
    print("submit_evolution:", json.dumps(c.submit_evolution(task["batch_id"], json.dumps(MAE), parents, meta)))
    time.sleep(1.1)  # AMM signs `auth:<seconds>`; the pool refuses a message seen before
    task = c.request_task("evaluate")
    evals = [{"function_id": f["id"], "score": 0.5,
              "criteria": {"accuracy": 0.5, "stability": 1.0, "efficiency": 1.0}}
             for f in task["functions"]]
    time.sleep(1.1)
    print("submit_evaluation:", json.dumps(c.submit_evaluation(task["batch_id"], evals)))


if __name__ == "__main__":
    main()
