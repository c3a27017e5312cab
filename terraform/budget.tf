# Monthly cost budget with e-mail alerts on actual (default 50/80/100 %) and forecasted (100 %) spend.
# Budgets see costs with a delay of hours: the DAG's own per-run budget check is the hard stop.

resource "aws_budgets_budget" "monthly" {
  name         = "${var.name_prefix}-monthly"
  budget_type  = "COST"
  limit_amount = format("%.2f", var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "cost_filter" {
    for_each = var.budget_project_tag_only ? [1] : []
    content {
      name   = "TagKeyValue"
      values = ["user:Project$${var.name_prefix}"]
    }
  }

  dynamic "notification" {
    for_each = var.budget_actual_thresholds_percent
    content {
      comparison_operator        = "GREATER_THAN"
      threshold                  = notification.value
      threshold_type             = "PERCENTAGE"
      notification_type          = "ACTUAL"
      subscriber_email_addresses = var.budget_alert_emails
    }
  }

  dynamic "notification" {
    for_each = var.budget_forecast_thresholds_percent
    content {
      comparison_operator        = "GREATER_THAN"
      threshold                  = notification.value
      threshold_type             = "PERCENTAGE"
      notification_type          = "FORECASTED"
      subscriber_email_addresses = var.budget_alert_emails
    }
  }
}
