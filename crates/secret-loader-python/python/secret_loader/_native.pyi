"""Type stubs of the Rust extension module; `secret_loader` re-exports these."""

from typing import Any, Dict, Literal, Mapping, Optional, Sequence, Union

Transform = Optional[Literal["json", "binary", "auto"]]
OptionValue = Union[str, int, float, bool]

__version__: str

class Source:
    """One configured stack: a backend and its cache layers, built once, thread-safe."""

    def __init__(self, url: Optional[str] = None, **options: OptionValue) -> None: ...
    def get(
        self,
        name: str,
        *,
        transform: Transform = None,
        version_id: Optional[str] = None,
        version_stage: Optional[str] = None,
    ) -> Any: ...
    def refresh(
        self,
        name: str,
        *,
        transform: Transform = None,
        version_id: Optional[str] = None,
        version_stage: Optional[str] = None,
    ) -> Any: ...
    def get_field(self, name: str, field: str) -> str: ...
    def get_many(
        self,
        names: Sequence[str],
        *,
        transform: Transform = None,
        raise_on_error: bool = True,
    ) -> Dict[str, Any]: ...
    def calls(self) -> Dict[str, int]: ...

def get_secret(
    name: str,
    *,
    source: Union[str, Source, None] = None,
    transform: Transform = None,
    max_age: Optional[float] = None,
    force_fetch: bool = False,
    version_id: Optional[str] = None,
    version_stage: Optional[str] = None,
) -> Any: ...
def get_parameter(
    name: str,
    *,
    source: Union[str, Source, None] = None,
    transform: Transform = None,
    decrypt: Optional[bool] = None,
    max_age: Optional[float] = None,
    force_fetch: bool = False,
) -> Any: ...
def get_field(
    name: str,
    field: str,
    *,
    source: Union[str, Source, None] = None,
    max_age: Optional[float] = None,
    force_fetch: bool = False,
) -> str: ...
def calls() -> Dict[str, int]: ...
def _after_fork_in_child() -> None: ...
