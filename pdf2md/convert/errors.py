"""Conversion failures in the terms of the failure records (contracts.ERROR_CLASSES)."""

from __future__ import annotations

from pdf2md.contracts import ERROR_CLASSES


class ConversionError(Exception):
    """A PDF that cannot be converted, with the error class the failure record will carry."""

    def __init__(self, error_class: str, message: str) -> None:
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(message)
        self.error_class = error_class
        self.message = message

    @property
    def retryable(self) -> bool:
        return ERROR_CLASSES[self.error_class].retryable

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"
