from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from . import metrics

        metrics.task_signals_connect()  # llmobserve_tasks_total{task,outcome} for every house task
