"""Prices: tokens into money. The user's own table first, then the ``genai-prices`` library.

``prices={"my-model": (0.15, 0.60)}`` gives US dollars per million input and output
tokens for a model name (the name the server reports, or the model's ``name``). Any
other model is looked up in `genai-prices <https://pypi.org/project/genai-prices/>`_
(the ``cost`` extra) by its name *and the provider behind its URL*, so a self-hosted
server (vLLM, llama.cpp, Ollama) is never priced as if it were a provider's API. A
model neither knows has no price: its tokens are counted, its cost shows as unknown.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

__all__ = ["Prices", "price_table", "model_url"]

PerMillion = tuple[float, float]
"""(US dollars per million input tokens, per million output tokens)."""


class Prices:
    """A price lookup: ``cost(name, url, tokens_in, tokens_out)`` in US dollars, or None when unknown.

    >>> p = Prices({"m": (1.0, 2.0)}, library=False)
    >>> p.cost("m", None, 1_000_000, 500_000)
    2.0
    >>> p.cost("other", None, 10, 10) is None
    True
    """

    def __init__(self, table: Mapping[str, PerMillion] | None = None, *, library: bool = True):
        self.table: dict[str, PerMillion] = {}
        for name, pair in (table or {}).items():
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(v, int | float) and v >= 0 for v in pair)):
                msg = f"prices[{name!r}] must be (dollars per million input tokens, per million output tokens), got {pair!r}"
                raise ValueError(msg)
            self.table[str(name)] = (float(pair[0]), float(pair[1]))
        self.library = library

    def known(self, name: str | None, url: str | None) -> bool:
        """Whether a model called ``name`` at ``url`` has a price."""
        return self.cost(name, url, 0, 0) is not None

    def cost(self, name: str | None, url: str | None, tokens_in: int, tokens_out: int) -> float | None:
        """The price of one request, or None when neither the table nor the library knows the model."""
        if name is None:
            return None
        pair = self.table.get(name)
        if pair is None and self.library and url is not None:
            pair = _library_price(name, url)
        if pair is None:
            return None
        return (tokens_in * pair[0] + tokens_out * pair[1]) / 1_000_000


def _self_hosted(url: str) -> bool:
    """Whether ``url`` is a machine of one's own (loopback, a private address, a bare host name).

    >>> _self_hosted("http://127.0.0.1:8000/v1"), _self_hosted("http://gpu1:8000/v1"), _self_hosted("https://api.openai.com/v1")
    (True, True, False)
    """
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith((".local", ".internal", ".lan"))
    return address.is_private or address.is_loopback or address.is_link_local


@functools.cache
def _library_price(name: str, url: str) -> PerMillion | None:
    """Dollars per million tokens from genai-prices for ``name`` served at ``url`` (None: unknown,
    self-hosted, or the library is not installed). A self-hosted URL is never looked up (and the
    library, which brings pydantic, is not even imported for it)."""
    if _self_hosted(url):
        return None
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    try:
        million = 1_000_000
        got_in = calc_price(Usage(input_tokens=million, output_tokens=0), model_ref=name, provider_api_url=url)
        got_out = calc_price(Usage(input_tokens=0, output_tokens=million), model_ref=name, provider_api_url=url)
    except (LookupError, ValueError):
        return None
    return float(got_in.total_price), float(got_out.total_price)


def price_table(option: Any) -> Prices | None:
    """The run option ``prices``: None (the library only), a mapping (yours, then the library),
    a :class:`Prices`, or False (no pricing)."""
    if option is False:
        return None
    if isinstance(option, Prices):
        return option
    if option is None or isinstance(option, Mapping):
        return Prices(option)
    msg = f"prices must be a dict of model name -> (input, output) dollars per million tokens, a Prices, None or False; got {option!r}"
    raise TypeError(msg)


def model_url(model: Any) -> str | None:
    """The URL a model is served at (for the provider's price), None for in-process models."""
    urls = getattr(model, "base_urls", None)
    return urls[0] if urls else None
