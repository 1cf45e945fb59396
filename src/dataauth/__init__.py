"""dataauth: a gateway for public data authorized operation (公共数据授权运营).

Operators get answers computed from a department's data, never the data itself
(原始数据不出域、数据可用不可见). See the README's architecture section for the spine.
"""

__version__ = "0.1.0"
