"""Checks the function assets of a CDK synth that built its functions (run by infra/cdk/test/consumer.sh).

    .venv/bin/python infra/checks/check_cdk_assets.py CDK_OUT STACK [STACK ...]

For each stack template in CDK_OUT: it has the four functions, and each function's asset folder is a package
that provided.al2023 on arm64 runs (check_build.package_problems: bootstrap alone, an executable aarch64 ELF).
Across the stacks: one asset per function, shared, so that an app with several stacks builds each function once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from check_build import package_problems, report

FUNCTIONS_PER_STACK = 4


def check(out: Path, stacks: list[str]) -> tuple[list[str], list[str]]:
    """(problems, one line of figures per asset)."""
    problems, figures = [], []
    users: dict[str, list[str]] = {}
    for stack in stacks:
        path = out / f"{stack}.template.json"
        try:
            resources = json.loads(path.read_text()).get("Resources", {})
        except (OSError, ValueError) as e:
            problems.append(f"{stack}: cannot read {path}: {e}")
            continue
        functions = {k: r for k, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"}
        if len(functions) != FUNCTIONS_PER_STACK:
            problems.append(f"{stack}: {len(functions)} functions, not {FUNCTIONS_PER_STACK}")
        for logical_id, resource in functions.items():
            asset = resource.get("Metadata", {}).get("aws:asset:path")
            if not asset:
                problems.append(f"{stack}/{logical_id}: no aws:asset:path in its metadata (not a file asset?)")
                continue
            users.setdefault(asset, []).append(f"{stack}/{logical_id}")
    if len(users) != FUNCTIONS_PER_STACK:
        problems.append(
            f"{len(users)} function assets for {len(stacks)} stacks, not {FUNCTIONS_PER_STACK} shared ones: {sorted(users)}"
        )
    for asset, names in sorted(users.items()):
        folder = out / asset
        if not folder.is_dir():
            problems.append(f"{asset}: the asset folder is missing")
            continue
        problems += [f"{asset}: {p}" for p in package_problems(folder)]
        bootstrap = folder / "bootstrap"
        size = bootstrap.stat().st_size if bootstrap.is_file() else 0
        figures.append(f"{asset}/bootstrap: {size / 1e6:.2f} MB, for {', '.join(names)}")
    return problems, figures


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems, figures = check(Path(argv[1]), argv[2:])
    return report(
        problems,
        figures,
        "check_cdk_assets: the synth's function assets would not deploy as they should:",
        f"check_cdk_assets: {len(figures)} shared arm64 function assets for {len(argv) - 2} stacks",
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
