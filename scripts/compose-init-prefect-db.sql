CREATE DATABASE prefect OWNER mirbench;
