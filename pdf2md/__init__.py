"""pdf2md: PDFs in S3 to Markdown on AWS Batch, orchestrated by Airflow."""

__version__ = "0.1.0"
