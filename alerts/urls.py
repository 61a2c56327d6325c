"""The alerts pages and their form actions."""

from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:pk>/read/", views.alert_read, name="alert-read"),
    path("alerts/read/", views.alerts_read_all, name="alerts-read-all"),
    path("alerts/summaries/<int:pk>/", views.summary_detail, name="alert-summary"),
    path("alerts/summaries/<int:pk>/read/", views.summary_read, name="summary-read"),
    path("settings/", views.alert_settings, name="settings"),
    path("settings/secret/", views.settings_new_secret, name="settings-secret"),
    path("settings/test/<str:channel>/", views.send_test_alert, name="settings-test"),
    path("settings/email/confirm/", views.resend_confirmation, name="resend-confirmation"),
    path("settings/email/confirm/<str:token>/", views.confirm_email, name="confirm-email"),
    path("people/<int:pk>/alerts/", views.person_alerts, name="person-alerts"),
]
