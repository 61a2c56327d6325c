"""The OpenAPI schema (drf-spectacular): every operation also documents the errors it really answers.

The error body is always `{"error": "..."}` (recognition.api.exception_handler), with DRF's `detail`
when DRF raised it. Which errors an operation gets follows from the view, so new endpoints get theirs too:
401 without credentials; 403 for staff-only views and, on writes, a session without the CSRF token; 404
on paths with an id; 400 on operations with a request body; 429 on throttled ones.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAdminUser


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, in words for a person")
    detail = serializers.CharField(required=False, help_text="DRF's message, when DRF raised the error")


# A 400 from a serializer also names each field's problems: {"error": "...", "<field>": ["message", ...]}.
VALIDATION_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error"],
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


def error(description: str, serializer: type[serializers.Serializer] | dict = ErrorSerializer) -> OpenApiResponse:
    return OpenApiResponse(serializer, description=description)


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in self._errors().items():
            responses.setdefault(code, self._get_response_for_code(response, code, direction=direction))
        return responses

    def _errors(self) -> dict[str, OpenApiResponse]:
        permissions = self.view.get_permissions()
        errors = {}
        if not all(isinstance(permission, AllowAny) for permission in permissions):
            errors["401"] = error("Not signed in: no token and no session")
        if any(isinstance(permission, IsAdminUser) for permission in permissions):
            errors["403"] = error("Signed in, but not staff")
        elif self.method not in ("GET", "HEAD", "OPTIONS") and not self._token_only():
            errors["403"] = error("A session without the CSRF token (token clients are not asked for it)")
        if "{" in self.path:
            errors["404"] = error("No such object, or another user's")
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors["400"] = error("The request body is not valid", VALIDATION_ERROR)
        if self.view.get_throttles():
            errors["429"] = error("Too many requests: wait for the number of seconds in Retry-After")
        return errors

    def _token_only(self) -> bool:
        from rest_framework.authentication import SessionAuthentication

        return not any(isinstance(auth, SessionAuthentication) for auth in self.view.get_authenticators())
