"""Feature extractors images -> B x C x h x w (declared by name in ``adbench.components``)."""
