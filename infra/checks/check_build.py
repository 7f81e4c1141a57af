"""Checks what `sam build` made, as a deploy would upload it: run by `make sam-build` after the build.

    .venv/bin/python infra/checks/check_build.py [BUILD_DIR [SAM_TEMPLATE_JSON]]

BUILD_DIR is sam build's output (default .aws-sam/build); the template (default target/sam/template.json, the
SAM template after the SAM transform) says which functions there are. For each function:
- its folder holds exactly one file, `bootstrap`, a 64-bit little-endian aarch64 ELF executable (the template
  says arm64 and provided.al2023, which runs `bootstrap`);
- the zip `sam deploy` uploads (the folder, deflated) is under its budget in BUDGETS.

It prints each function's figures. The budgets sit just above the sizes measured when they were set
(docs/deploy.md, "Function size"): a dependency or a profile change that makes a function much bigger fails
here, and the budget is then raised on purpose or the growth undone.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import cfn

BUILD_DIR = cfn.ROOT / ".aws-sam" / "build"
# Bytes of each function's deployment zip, about 4% above the sizes measured on 2026-12-07 with the release
# profile of Cargo.toml, once the job queue's DynamoDB client came in (submit 5.53 MB, check-jobs 5.47 MB,
# finalize 5.37 MB, wake 5.05 MB; check-jobs, which calls DynamoDB, grew by 0.38 MB, the others by 0.12 MB).
BUDGETS = {
    "SubmitFunction": 5_750_000,
    "CheckJobsFunction": 5_700_000,
    "FinalizeFunction": 5_600_000,
    "WakeFunction": 5_250_000,
}
ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 0xB7


def elf_problem(data: bytes) -> str | None:
    """Why `data` is not a 64-bit little-endian aarch64 executable, or None."""
    if data[:4] != ELF_MAGIC:
        return "is not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return "is not a 64-bit little-endian ELF file"
    kind = int.from_bytes(data[16:18], "little")
    if kind not in (2, 3):  # ET_EXEC, or ET_DYN for a position-independent executable
        return f"is an ELF file of type {kind}, not an executable"
    machine = int.from_bytes(data[18:20], "little")
    if machine != EM_AARCH64:
        return f"is built for ELF machine {machine:#x}, not aarch64 ({EM_AARCH64:#x}): Lambda arm64 cannot run it"
    return None


def package_problems(folder: Path) -> list[str]:
    """What keeps a function's package folder from being what provided.al2023 on arm64 runs: exactly one file,
    `bootstrap`, an executable aarch64 ELF. Also used on the CDK synth's assets (check_cdk_assets.py)."""
    bootstrap = folder / "bootstrap"
    if not bootstrap.is_file():
        return [f"{bootstrap} is missing"]
    problems = []
    others = sorted(p.name for p in folder.iterdir() if p.name != "bootstrap")
    if others:
        problems.append(f"the package holds more than bootstrap: {others}")
    with bootstrap.open("rb") as f:
        why = elf_problem(f.read(64))
    if why:
        problems.append(f"bootstrap {why}")
    if not bootstrap.stat().st_mode & 0o111:
        problems.append("bootstrap is not executable")
    return problems


def zipped_size(folder: Path) -> int:
    """The size of the folder as a deflated zip, the way sam deploy packages a function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(path, path.relative_to(folder).as_posix())
    return len(buffer.getvalue())


def functions(template: dict) -> list[str]:
    return sorted(k for k, r in template.get("Resources", {}).items() if r.get("Type") == "AWS::Lambda::Function")


def check(build_dir=BUILD_DIR, sam_path=cfn.SAM_TEMPLATE) -> tuple[list[str], list[str]]:
    """(problems, one line of figures per function)."""
    build_dir = Path(build_dir)
    problems, figures = [], []
    names = functions(cfn.load(sam_path))
    if sorted(BUDGETS) != names:
        problems.append(f"BUDGETS names {sorted(BUDGETS)}, the template's functions are {names}")
    for name in names:
        folder = build_dir / name
        bootstrap = folder / "bootstrap"
        if not bootstrap.is_file():
            problems.append(f"{name}: {bootstrap} is missing (did sam build run?)")
            continue
        problems += [f"{name}: {p}" for p in package_problems(folder)]
        data = bootstrap.read_bytes()
        size = zipped_size(folder)
        budget = BUDGETS.get(name)
        figures.append(
            f"{name:18} bootstrap {len(data) / 1e6:6.2f} MB   zip {size / 1e6:5.2f} MB"
            + (f"   budget {budget / 1e6:5.2f} MB ({100 * size / budget:3.0f}%)" if budget else "")
        )
        if budget is not None and size > budget:
            problems.append(
                f"{name}: its zip is {size:,} bytes, over its budget of {budget:,} (infra/checks/check_build.py "
                "BUDGETS): find what grew (cargo tree, cargo bloat) or raise the budget on purpose"
            )
    return problems, figures


def report(problems: list[str], figures: list[str], failed: str, passed: str) -> int:
    """Prints a check's figures, then its problems under `failed` (exit code 1) or `passed` (0)."""
    for line in figures:
        print(f"  {line}")
    if problems:
        print(failed, file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(passed)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) > 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    problems, figures = check(*argv[1:])
    return report(
        problems,
        figures,
        "check_build: what sam build made would not deploy as it should:",
        f"check_build: {len(figures)} arm64 functions, each under its size budget",
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
