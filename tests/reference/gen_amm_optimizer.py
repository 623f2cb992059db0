"""Reference fixtures for AMM's optimizer component (component_type `optimizer`), written as
JSON under tests/reference/amm_optimizer/.

Same machinery as gen_amm_activation.py (imported from there): each evaluate task runs in a
fresh Python process through AMM's own `PoolClient.process_evaluation_task`, with the HTTP
session replaced by a recorder, and `evaluations` is the body AMM would post.

What the fixtures pin: AMM's client calls `component_strategy.evaluate(genetic_code,
stop_flag=stop_flag)` (client.py:559), but `OptimizerStrategy.evaluate(self, genetic_code,
dataset)` (optimizer/strategy.py:59) takes no `stop_flag` and requires `dataset`, so every
call raises `TypeError` before its body runs, and the client records score 0.0 with criteria
accuracy/stability/efficiency 0.0 (client.py:581-592) for every function that deserializes to a
list. Text that does not deserialize gets no record; a component_type AMM does not register
(e.g. `optimizer_function`) makes `process_evaluation_task` raise before any evaluation, and
nothing is posted (`evaluations` null, `task_exception` set).

    AMM_REPO=/path/to/AutoML-Miner venv/bin/python tests/reference/gen_amm_optimizer.py
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_amm_activation as common  # noqa: E402

# S-register meanings the library's comments assume (S0 = param, S1 = grad, S2 = lr); AMM
# never runs them: the interpreter would see S2 = BATCH_SIZE and S3 = 0.001, and opcode 4 is
# DIV (the library comment says MULTIPLY).
FUNCTIONS = {
    "sgd": [[100, 1, 0], [100, 2, 1], [100, 3, 2], [4, 4, 3, 2], [2, 5, 1, 4], [453, 5]],
    "sgd_fallback": [[100, 1, 0], [100, 2, 1], [100, 3, 3], [4, 4, 3, 2], [2, 5, 1, 4], [453, 5]],
    "sgd_mul_lr": [[100, 1, 0], [100, 2, 1], [100, 3, 3], [3, 3, 2, 4], [2, 1, 4, 9], [453, 9]],
    "identity_update": [[100, 1, 0], [453, 1]],
    "sign_descent": [[100, 1, 0], [100, 2, 1], [100, 3, 3], [9, 2, 4], [4, 2, 4, 5],
                     [3, 3, 5, 6], [2, 1, 6, 9], [453, 9]],
    "empty": [],
    "bad_opcode": [["x", 1, 0], [453, 1]],
}


def mutants():
    sys.path.insert(0, os.environ["AMM_REPO"])
    import logging
    logging.disable(logging.CRITICAL)
    from automl_client.genetic.strategies import SteadyStateGeneticAlgorithm
    ga = SteadyStateGeneticAlgorithm()
    out = {}
    for k in range(4):
        random.seed(7170 + k)
        out[f"mut_{k:02d}_sgd"] = json.loads(json.dumps(ga.mutate(FUNCTIONS["sgd"], 0.6)))
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--task":
        res = common.run_client_task(json.load(sys.stdin),
                                     "automl_client.components.optimizer.strategy",
                                     "OptimizerStrategy")
        print(json.dumps(res))
        return
    progs = dict(FUNCTIONS)
    progs.update(mutants())
    task_list = [
        {"component_type": "optimizer", "functions": ["sgd", "sgd_fallback", "identity_update"]},
        {"component_type": "optimizer", "functions": ["sgd_mul_lr", "sign_descent", "empty", "bad_opcode"]},
        {"component_type": "optimizer", "functions": ["mut_00_sgd", "mut_01_sgd", "mut_02_sgd", "mut_03_sgd"]},
        {"component_type": "optimizer", "functions": ["sgd", "identity_update"], "string_form": True,
         "raw_functions": ["[[100, 1, 0], [453", "{\"a\": 1}", "[[100, 1, 0], 7]"]},
        {"component_type": "optimizer_function", "functions": ["sgd"]},
    ]
    common.run_all("optimizer", task_list, progs, [os.path.abspath(__file__), "--task"],
                   os.path.join(common.HERE, "amm_optimizer"))


if __name__ == "__main__":
    main()
