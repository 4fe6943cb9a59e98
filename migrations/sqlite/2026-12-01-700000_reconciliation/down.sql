DROP TABLE recon_diff;
DROP TABLE recon_run;
