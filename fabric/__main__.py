"""``python -m fabric``: summary and bill of materials of a 127-node DGX H100 SuperPOD."""

import fabric
from fabric.materials import bill_of_materials
from fabric.metrics import summary


def main():
    """Print the summary and bill of materials of ``fabric.dgx_superpod(127, gpu="H100")``."""
    G = fabric.dgx_superpod(127, gpu="H100")
    print(summary(G))
    print()
    print(bill_of_materials(G))


if __name__ == "__main__":
    main()
