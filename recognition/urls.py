"""The gallery pages, their form actions, and the owner-only media views."""

from django.contrib.auth import views as auth_views
from django.urls import path

from recognition import views

urlpatterns = [
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("", views.gallery, name="gallery"),
    path("photos/status/", views.photo_status, name="photo-status"),
    path("photos/bulk/", views.photos_bulk, name="photos-bulk"),
    path("photos/<int:pk>/", views.photo_detail, name="photo"),
    path("photos/<int:pk>/reprocess/", views.photo_reprocess, name="photo-reprocess"),
    path("photos/<int:pk>/delete/", views.photo_delete, name="photo-delete"),
    path("faces/<int:pk>/name/", views.face_name, name="face-name"),
    path("faces/<int:pk>/reject/", views.face_reject, name="face-reject"),
    path("faces/<int:pk>/picture/", views.face_picture, name="face-picture"),
    path("people/", views.people, name="people"),
    path("people/<int:pk>/", views.person_detail, name="person"),
    path("people/<int:pk>/references/", views.person_references, name="person-references"),
    path("people/<int:pk>/rename/", views.person_rename, name="person-rename"),
    path("people/<int:pk>/delete/", views.person_delete, name="person-delete"),
    path("people/<int:pk>/merge/", views.person_merge, name="person-merge"),
    path("people/<int:pk>/hide/", views.person_hide, name="person-hide"),
    path("references/<int:pk>/delete/", views.reference_delete, name="reference-delete"),
    path("references/<int:pk>/choose/", views.reference_choose, name="reference-choose"),
    path("who/", views.groups, name="groups"),
    path("who/<int:pk>/", views.group_detail, name="group"),
    path("who/<int:pk>/name/", views.group_name, name="group-name"),
    path("who/<int:pk>/remove/", views.group_remove, name="group-remove"),
    path("who/<int:pk>/merge/", views.group_merge, name="group-merge"),
    path("who/<int:pk>/hide/", views.group_hide, name="group-hide"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:pk>/read/", views.alert_read, name="alert-read"),
    path("alerts/read/", views.alerts_read_all, name="alerts-read-all"),
    path("settings/", views.user_settings, name="settings"),
    path("settings/secret/", views.settings_new_secret, name="settings-secret"),
    # Media, owner only: there is no public media folder.
    path("media/photos/<int:pk>/original", views.photo_original, name="photo-original"),
    path("media/photos/<int:pk>/web.jpg", views.photo_web, name="photo-web"),
    path("media/photos/<int:pk>/thumb.jpg", views.photo_thumbnail, name="photo-thumbnail"),
    path("media/faces/<int:pk>.jpg", views.face_image, name="face-image"),
    path("media/references/<int:pk>.jpg", views.reference_image, name="reference-image"),
]
