"""Servers: GPUs, their NVLink domain and their NICs, added to a fabric graph.

An 8-GPU HGX/DGX server is one NVLink domain: every GPU has an NVLink edge to the
domain's NVSwitch node (one node stands for all NVSwitch chips) and a PCIe edge to its own
NIC. A GB200 NVL72 rack is one domain of 72 GPUs spread over 18 compute trays.
"""

from fabric.bulk import add_edges, add_nodes
from fabric.schema import gpu_name, nic_name, nvswitch_name
from fabric.units import ns

# Crossing an NVSwitch chip; NVIDIA publishes no per-hop figure. NCCL's tuning model
# charges 0.6 us per NVLink hop at the software level (tuning.cc), far above the wire. [estimate]
NVSWITCH_LATENCY = 100 * ns
# GPU to NIC through the server's PCIe switch; PCIe switch cut-through is ~100-150 ns
# (Broadcom PEX89000 product brief), plus the NIC's own pipeline. [estimate]
PCIE_LATENCY = 300 * ns


def add_servers(G, *, hosts, gpus_per_node, gpus_per_domain, gpu, nic):
    """Add ``hosts`` servers of ``gpus_per_node`` GPUs, each GPU with its own NIC.

    Parameters
    ----------
    G : networkx.DiGraph
        The graph to extend.
    hosts, gpus_per_node : int
        Servers and GPUs per server; GPU ranks are host-major.
    gpus_per_domain : int
        GPUs sharing one NVLink domain (a multiple of ``gpus_per_node``).
    gpu : fabric.catalog.GPUSpec
    nic : fabric.catalog.NICSpec

    Returns
    -------
    list of str
        The NIC node names, indexed by rank.
    """
    nvlink = gpu.nvlink_bandwidth
    pcie = min(gpu.pcie_bandwidth, nic.host_bandwidth)
    nvswitch_model = f"nvlink{gpu.nvlink_generation}"
    n = hosts * gpus_per_node
    nodes, edges = [], []
    for domain in range(-(-n // gpus_per_domain)):
        nodes.append((nvswitch_name(domain), {"kind": "nvswitch", "domain": domain, "model": nvswitch_model}))
    nics = []
    for rank in range(n):
        host, local = divmod(rank, gpus_per_node)
        domain = rank // gpus_per_domain
        g, c, s = gpu_name(rank), nic_name(rank), nvswitch_name(domain)
        nodes.append(
            (g, {"kind": "gpu", "rank": rank, "host": host, "local_rank": local, "rail": local, "domain": domain})
        )
        nodes.append((c, {"kind": "nic", "host": host, "rail": local, "model": nic.name}))
        edges.append((g, s, {"bandwidth": nvlink, "latency": NVSWITCH_LATENCY, "medium": "nvlink", "links": 1}))
        edges.append((s, g, {"bandwidth": nvlink, "latency": 0.0, "medium": "nvlink", "links": 1}))
        edges.append((g, c, {"bandwidth": pcie, "latency": PCIE_LATENCY, "medium": "pcie", "links": 1}))
        edges.append((c, g, {"bandwidth": pcie, "latency": PCIE_LATENCY, "medium": "pcie", "links": 1}))
        nics.append(c)
    add_nodes(G, nodes)
    add_edges(G, edges)
    return nics
