"""Tests of the instrument engine (pro_service.instruments) and the score command."""
