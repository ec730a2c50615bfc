"""Patients: registering and editing them, their phone numbers, the changes of their course that
move the schedule (surgery date, leaving the study), and what nurses read about them (the
completion board, the patient page's overview and score charts)."""
