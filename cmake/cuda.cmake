# placeholder: filled by the cuda backend work
