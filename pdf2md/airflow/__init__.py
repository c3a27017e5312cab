"""The Airflow side: Params, the budget-aware Batch sensor, and the tasks both DAGs share.

Importing this package needs apache-airflow (the `airflow` extra); the worker never does.
"""
