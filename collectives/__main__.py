"""``python -m collectives``: estimate a training step on a built-in example cluster.

Llama-3-8B on 32 H100 GPUs (a 4-server DGX SuperPOD slice), tp8 x dp4, at the flow level.
"""

import collectives
import fabric


def main():
    G = fabric.dgx_superpod(4, gpu="H100")
    model = collectives.MODELS["llama3-8b"]
    plan = collectives.Parallelism(tp=8, dp=4, global_batch=64)
    print(fabric.summary(G))
    print()
    print(collectives.estimate_step(model, plan, G))


if __name__ == "__main__":
    main()
