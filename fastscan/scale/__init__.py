"""Optional engines that run the bulk batch function past one machine (imported lazily)."""
