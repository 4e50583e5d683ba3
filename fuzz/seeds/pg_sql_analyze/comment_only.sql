-- nothing here
/* at all */