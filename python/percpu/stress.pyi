# SPDX-License-Identifier: MIT
# Test support, not product API (docs/python.md, "Test support shipped
# with the package"): typed so the stress tool's own callers check.
from typing import Callable, Iterable, NamedTuple, Optional, Sequence

class Result(NamedTuple):
    scenario: str
    backend: str
    variant: str
    ok: bool
    detail: Optional[str]

SCENARIOS: dict[str, Callable[..., Optional[str]]]
VARIANTS: tuple[str, ...]

def run(scenario: str, backend: Optional[str] = ..., *, threads: Optional[int] = ...,
        iters: int = ..., variant: str = ..., timeout: float = ...) -> Result: ...
def run_all(backends: Optional[Iterable[str]] = ..., scenarios: Optional[Iterable[str]] = ...,
            variants: Sequence[str] = ..., **kw: object) -> list[Result]: ...
def main(argv: Optional[Sequence[str]] = ...) -> int: ...
