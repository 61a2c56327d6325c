"""The gallery pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from recognition import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.gallery, name="gallery"),
    path("photos/<int:pk>/", views.photo_detail, name="photo"),
    path("people/<int:pk>/", views.person_detail, name="person"),
]
