"""The NGFF versions an output can be written in: one frozen format object per version.

Code that depends on the version asks its format object (``ngff_format(v).sharding``)
instead of comparing version strings. :mod:`pssr_volume.io.ome_zarr` turns a format into
zarr arrays and metadata; the configuration checks its limits before anything is opened.
This is a leaf: it imports nothing of the package, so the configuration can use it.

=========================  ===============  ==============
property                   NGFF 0.4         NGFF 0.5
=========================  ===============  ==============
zarr format                2                3
chunk codec                gzip (CRC-32     zstd, then a
                           in its trailer)  crc32c codec
sharding                   no               yes
checksum codec             none             crc32c
compression levels         0-9              0-22
where the NGFF metadata    ``.zattrs``,     ``zarr.json``,
is kept                    top level        under ``ome``
=========================  ===============  ==============
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NgffFormat:
    """How outputs of one NGFF version are stored.

    Attributes
    ----------
    version : str
        The NGFF version, as the user names it (``"0.5"``).
    zarr_format : int
        The zarr format of the store (2 or 3).
    codec : str
        The compressor of every chunk: ``"zstd"`` or ``"gzip"``.
    sharding : bool
        Whether chunks may be stored in shards (zarr v3 only).
    checksum : str or None
        The checksum codec after the compressor (``"crc32c"``), or ``None`` where the
        format has none that readers accept (gzip's own CRC-32 then guards the data).
    compression_levels : tuple of int
        The lowest and highest compression level of ``codec``.
    attributes_key : str or None
        The group attribute the NGFF metadata is kept under (``"ome"``), or ``None``
        when it is at the top level of the attributes.
    attributes_file : str
        The file of a group that holds its attributes.
    """

    version: str
    zarr_format: int
    codec: str
    sharding: bool
    checksum: str | None
    compression_levels: tuple[int, int]
    attributes_key: str | None
    attributes_file: str


V04 = NgffFormat(version="0.4", zarr_format=2, codec="gzip", sharding=False, checksum=None,
                 compression_levels=(0, 9), attributes_key=None, attributes_file=".zattrs")
V05 = NgffFormat(version="0.5", zarr_format=3, codec="zstd", sharding=True, checksum="crc32c",
                 compression_levels=(0, 22), attributes_key="ome", attributes_file="zarr.json")
FORMATS = {f.version: f for f in (V04, V05)}


def ngff_format(version: str) -> NgffFormat:
    """The format object of an NGFF ``version`` (``"0.4"`` or ``"0.5"``).

    Raises
    ------
    ValueError
        For a version that outputs cannot be written in.
    """
    try:
        return FORMATS[version]
    except KeyError:
        raise ValueError(f"NGFF version {version!r}: outputs are written in "
                         f"{' or '.join(FORMATS)}") from None
