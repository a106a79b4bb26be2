"""Markdown tables from pytest-benchmark JSON files of bench/test_attention_bench.py and bench/test_kv_bench.py.

python bench/summarize.py bench/results/attention_cpu.json [more.json ...]
Ratios compare implementations measured in the same run (same file)."""

import json
import sys
from collections import defaultdict


def attention_table(benchmarks: list[dict]) -> list[str]:
    cases: dict[tuple, dict[str, float]] = defaultdict(dict)
    for b in benchmarks:
        info = b["extra_info"]
        key = (info["shape"], info["batch"], info["prefix"], info["suffix"])
        cases[key][info["impl"]] = b["stats"]["median"] * 1e3
    lines = [
        "| shape | batch | prefix | suffix | hydragen ms | paged ms | sdpa ms | paged / hydragen | sdpa / hydragen |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(cases):
        t = cases[key]
        h = t.get("hydragen")
        cells = [f"{t[i]:.3f}" if i in t else "-" for i in ("hydragen", "paged", "sdpa")]
        ratios = [f"{t[i] / h:.2f}x" if h and i in t else "-" for i in ("paged", "sdpa")]
        lines.append("| " + " | ".join([*map(str, key), *cells, *ratios]) + " |")
    return lines


def kv_table(benchmarks: list[dict]) -> list[str]:
    lines = ["| op | impl | tokens | kv_heads | head_dim | median ms | GB/s |", "|---|---|---|---|---|---|---|"]
    for b in sorted(benchmarks, key=lambda b: (b["name"].split("[")[0], b["extra_info"]["tokens"])):
        info, median = b["extra_info"], b["stats"]["median"]
        op = b["name"].split("[")[0].removeprefix("test_")
        gbs = info["bytes"] / median / 1e9
        lines.append(
            f"| {op} | {info['impl']} | {info['tokens']} | {info['kv_heads']} | {info['dim']} | "
            f"{median * 1e3:.3f} | {gbs:.1f} |"
        )
    return lines


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        machine = data.get("machine_info", {})
        print(f"\n### {path}\n\n{machine.get('cpu', {}).get('brand_raw', '')} python {machine.get('python_version')}\n")
        benchmarks = data["benchmarks"]
        attention = [b for b in benchmarks if "impl" in b["extra_info"] and "shape" in b["extra_info"]]
        kv = [b for b in benchmarks if "bytes" in b["extra_info"]]
        if attention:
            print("\n".join(attention_table(attention)))
        if kv:
            print("\n".join(kv_table(kv)))


if __name__ == "__main__":
    main(sys.argv[1:])
