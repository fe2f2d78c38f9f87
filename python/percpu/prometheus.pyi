# SPDX-License-Identifier: MIT
from typing import Iterable, Optional

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector as _CollectorBase

class Collector(_CollectorBase):
    def __init__(self, prefix: str = ..., *, backend: Optional[str] = ...) -> None: ...
    def describe(self) -> Iterable[Metric]: ...
    def collect(self) -> Iterable[Metric]: ...
