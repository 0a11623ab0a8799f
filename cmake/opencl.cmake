# placeholder: filled by the opencl backend work
