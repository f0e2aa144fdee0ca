"""The encoder memory/speed study lives in the library (the pipeline runs it from an installed wheel):
`python -m longvid.encoder_memory --help`. This file runs the same from a checkout."""
from longvid.encoder_memory import main

if __name__ == "__main__":
    main()
