"""The text-layer path, in steps: spans from pdfium, lines and blocks, tables, Markdown."""
