"""What the three reports share (compare's, the kit's and bench's), in the manner of
coverage.py's html report: plain data first, then Jinja templates shipped in
``suite/templates``, files written whole or not at all.

:mod:`format` turns figures into cell text and holds :class:`~format.Table`;
:mod:`markdown` and :mod:`html` are the two Jinja environments; :mod:`figures` draws
matplotlib figures as inline SVG with the shared style and colors.
"""
